// NOT RUN HERE (see pom.xml): one dense layer with softmax output, one gradient computed.
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.lossfunctions.LossFunctions;

public class Check {
    public static void main(String[] args) {
        var conf = new NeuralNetConfiguration.Builder().seed(0).list()
            .layer(new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(4).nOut(3)
                   .activation(Activation.SOFTMAX).build())
            .build();
        var net = new MultiLayerNetwork(conf);
        net.init();
        net.setInput(Nd4j.rand(2, 4));
        net.setLabels(Nd4j.eye(3).getRows(0, 1));
        net.computeGradientAndScore();
        System.out.println("dl4j score " + net.score() + " gradient " + net.gradient().gradient());
    }
}
